//! Every error a client can receive, mapped to HTTP once, here, through one table:
//! (HTTP status, OpenAI error `type`, `code`). Messages are written for the client and never
//! carry internal detail; the detail is logged by the caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use reprise_api::ErrorBody;
use reprise_providers::UpstreamError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unknown route {method} {path}")]
    UnknownRoute { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("no configured target serves the model {model:?}")]
    ModelNotFound { model: String },
    #[error("upstream target {target:?} could not be reached")]
    UpstreamUnreachable { target: String },
    #[error("upstream target {target:?} did not answer in time")]
    UpstreamTimeout { target: String },
    #[error("upstream target {target:?} broke off its response")]
    UpstreamBroken { target: String },
    /// An upstream error whose body is already OpenAI-shaped: relayed as it came.
    #[error("upstream answered HTTP {status}")]
    UpstreamRelayed { status: StatusCode, body: Bytes },
    /// An upstream error whose body is not OpenAI-shaped: wrapped.
    #[error("upstream target {target:?} answered HTTP {status}")]
    UpstreamStatus { target: String, status: StatusCode },
    /// The upstream redirected: not followed (a request body and its key are never sent
    /// somewhere the configuration does not name), so the target's URL needs correcting.
    #[error(
        "upstream target {target:?} answered HTTP {status}, a redirect; Reprise does not follow \
         redirects: set the target's base_url to the address it redirects to"
    )]
    UpstreamRedirect { target: String, status: StatusCode },
    /// The request asks for something the provider cannot do (a 400 naming the field).
    #[error("{message}")]
    Unsupported { param: String, message: String },
    /// Every attempt failed with a retryable error, across more than one target.
    #[error("Every upstream attempt failed: {}", attempts.join("; "))]
    AllTargetsFailed { attempts: Vec<String> },
    /// Every attempt was rate-limited by its provider (not by the gateway's own limits).
    #[error("Every upstream target is rate-limiting requests: {}", attempts.join("; "))]
    UpstreamRateLimited {
        attempts: Vec<String>,
        retry_after: Option<std::time::Duration>,
    },
    /// No valid client credential: missing, unknown, revoked or expired (`code` says which).
    #[error("{message}")]
    Unauthenticated {
        code: &'static str,
        message: &'static str,
    },
    #[error("This key may not use the model {model:?}.")]
    ModelNotAllowed { model: String },
    /// The gateway's own rate limit (`code`: which one); distinct from `upstream_rate_limited`.
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after: std::time::Duration,
    },
    /// A daily or monthly USD budget is spent.
    #[error("{message}")]
    BudgetExceeded {
        code: &'static str,
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("the gateway is not ready: {reason}")]
    NotReady { reason: String },
    #[error("internal error")]
    Internal,
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// Maps a failed upstream call; `target` is the configured target's name.
    pub fn from_upstream(target: &str, err: UpstreamError) -> Self {
        let target = target.to_owned();
        match err {
            UpstreamError::Status { status, .. } if status.is_redirection() => {
                GatewayError::UpstreamRedirect { target, status }
            }
            UpstreamError::Status { status, body, .. } if is_openai_error(&body) => {
                GatewayError::UpstreamRelayed { status, body }
            }
            UpstreamError::Status { status, .. } => GatewayError::UpstreamStatus { target, status },
            UpstreamError::Unsupported { param, message } => {
                GatewayError::Unsupported { param, message }
            }
            e if e.is_timeout() => GatewayError::UpstreamTimeout { target },
            UpstreamError::Connect(_) => GatewayError::UpstreamUnreachable { target },
            UpstreamError::Transport(_)
            | UpstreamError::Truncated
            | UpstreamError::Malformed(_)
            | UpstreamError::InBand(_)
            | UpstreamError::FirstByteTimeout(_)
            | UpstreamError::TotalTimeout(_)
            | UpstreamError::IdleTimeout(_) => GatewayError::UpstreamBroken { target },
        }
    }

    /// The table: HTTP status, OpenAI error type, error code.
    pub fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        use GatewayError as E;
        match self {
            E::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
            E::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                Some("request_too_large"),
            ),
            E::UnknownRoute { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("unknown_url"),
            ),
            E::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                Some("method_not_allowed"),
            ),
            E::ModelNotFound { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
            ),
            E::UpstreamUnreachable { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_unreachable"),
            ),
            E::UpstreamTimeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                Some("upstream_timeout"),
            ),
            E::UpstreamBroken { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_broken_response"),
            ),
            E::UpstreamRelayed { status, .. } => (*status, "upstream_error", None),
            E::UpstreamRedirect { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_redirect"),
            ),
            E::UpstreamStatus { status, .. } => (
                *status,
                if status.is_client_error() {
                    "invalid_request_error"
                } else {
                    "upstream_error"
                },
                Some("upstream_http_error"),
            ),
            E::Unsupported { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("unsupported_parameter"),
            ),
            E::AllTargetsFailed { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_error",
                Some("all_targets_failed"),
            ),
            // `upstream_rate_limited`, never the gateway's own limit codes: a client can tell
            // the provider's 429 from Reprise's.
            E::UpstreamRateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some("upstream_rate_limited"),
            ),
            E::Unauthenticated { code, .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some(*code),
            ),
            E::ModelNotAllowed { .. } => (
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("model_not_allowed"),
            ),
            E::RateLimited { code, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some(*code),
            ),
            E::BudgetExceeded { code, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some(*code),
            ),
            E::Forbidden { .. } => (StatusCode::FORBIDDEN, "permission_error", Some("forbidden")),
            E::NotReady { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("not_ready"),
            ),
            E::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                Some("internal_error"),
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Whether the gateway refused the request on its own account: no valid credential, a model
    /// the key may not use, or the key's limits and budgets (`reprise_rejections_total`).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            GatewayError::Unauthenticated { .. }
                | GatewayError::ModelNotAllowed { .. }
                | GatewayError::RateLimited { .. }
                | GatewayError::BudgetExceeded { .. }
        )
    }

    /// A short, bounded label for the request log.
    pub fn label(&self) -> &'static str {
        let (_, kind, code) = self.parts();
        code.unwrap_or(kind)
    }

    pub fn body(&self) -> ErrorBody {
        let (_, kind, code) = self.parts();
        let param = match self {
            GatewayError::InvalidRequest { param, .. } => param.clone(),
            GatewayError::ModelNotFound { .. } => Some("model".to_owned()),
            GatewayError::Unsupported { param, .. } => Some(param.clone()),
            GatewayError::ModelNotAllowed { .. } => Some("model".to_owned()),
            _ => None,
        };
        ErrorBody::new(self.to_string(), kind, param, code.map(str::to_owned))
    }
}

fn is_openai_error(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorBody>(body).is_ok()
        || serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["error"]["message"].is_string())
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            GatewayError::UpstreamRateLimited {
                retry_after: Some(after),
                ..
            }
            | GatewayError::RateLimited {
                retry_after: after, ..
            }
            | GatewayError::BudgetExceeded {
                retry_after: after, ..
            } => HeaderValue::from_str(&after.as_secs_f64().ceil().max(1.0).to_string()).ok(),
            _ => None,
        };
        let body = match self {
            GatewayError::UpstreamRelayed { body, .. } => body,
            other => match serde_json::to_vec(&other.body()) {
                Ok(json) => Bytes::from(json),
                Err(_) => Bytes::from_static(
                    br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":"internal_error"}}"#,
                ),
            },
        };
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, after);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table as clients see it: status, body. A change here is a change to the API.
    #[test]
    fn error_table_snapshot() {
        let target = || "openai".to_owned();
        let errors = vec![
            GatewayError::invalid("missing required parameter: 'model'", Some("model")),
            GatewayError::PayloadTooLarge { limit: 1024 },
            GatewayError::UnknownRoute {
                method: "GET".into(),
                path: "/v1/nope".into(),
            },
            GatewayError::MethodNotAllowed {
                method: "PUT".into(),
                path: "/v1/models".into(),
            },
            GatewayError::ModelNotFound {
                model: "claude-3".into(),
            },
            GatewayError::UpstreamUnreachable { target: target() },
            GatewayError::UpstreamTimeout { target: target() },
            GatewayError::UpstreamBroken { target: target() },
            GatewayError::UpstreamStatus {
                target: target(),
                status: StatusCode::BAD_GATEWAY,
            },
            GatewayError::UpstreamStatus {
                target: target(),
                status: StatusCode::UNPROCESSABLE_ENTITY,
            },
            GatewayError::UpstreamRedirect {
                target: target(),
                status: StatusCode::TEMPORARY_REDIRECT,
            },
            GatewayError::NotReady {
                reason: "the store is not answering".into(),
            },
            GatewayError::Unsupported {
                param: "temperature".into(),
                message: "Anthropic does not support values of 'temperature' outside 0 to 1 \
                          ('temperature')."
                    .into(),
            },
            GatewayError::AllTargetsFailed {
                attempts: vec![
                    "openai (gpt-4o): HTTP 500".into(),
                    "anthropic (claude-sonnet-4-5): timed out".into(),
                ],
            },
            GatewayError::UpstreamRateLimited {
                attempts: vec!["openai (gpt-4o): HTTP 429".into()],
                retry_after: Some(std::time::Duration::from_millis(1500)),
            },
            GatewayError::Unauthenticated {
                code: "key_revoked",
                message: "This API key has been revoked.",
            },
            GatewayError::ModelNotAllowed {
                model: "gpt-4o".into(),
            },
            GatewayError::RateLimited {
                code: "rpm_limit_exceeded",
                message: "This key is limited to 100 requests per minute.".into(),
                retry_after: std::time::Duration::from_millis(2500),
            },
            GatewayError::BudgetExceeded {
                code: "daily_budget_exceeded",
                message: "This key's daily budget of $5.00 is spent.".into(),
                retry_after: std::time::Duration::from_secs(3600),
            },
            GatewayError::Forbidden {
                message: "admin routes answer only on loopback".into(),
            },
            GatewayError::Internal,
        ];
        let table: Vec<serde_json::Value> = errors
            .iter()
            .map(|e| serde_json::json!({"status": e.status().as_u16(), "body": e.body()}))
            .collect();
        insta::assert_json_snapshot!(table);
    }

    #[test]
    fn upstream_errors_relay_openai_bodies_and_wrap_others() {
        let openai = Bytes::from_static(
            br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        let e = GatewayError::from_upstream(
            "openai",
            UpstreamError::Status {
                status: StatusCode::UNAUTHORIZED,
                body: openai.clone(),
                retry_after: None,
            },
        );
        assert!(matches!(&e, GatewayError::UpstreamRelayed { body, .. } if *body == openai));
        let e = GatewayError::from_upstream(
            "openai",
            UpstreamError::Status {
                status: StatusCode::BAD_GATEWAY,
                body: Bytes::from_static(b"<html>nginx</html>"),
                retry_after: None,
            },
        );
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(!e.body().error.message.contains("nginx"));
    }
}
