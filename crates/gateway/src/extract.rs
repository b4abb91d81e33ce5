//! The one JSON extractor: reads the body within the configured limit and deserialises it,
//! turning every rejection into an OpenAI-shaped [`GatewayError`] that names the failing field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::{AppState, GatewayError};

/// A deserialised JSON body together with the bytes it came from (forwarded untouched when the
/// gateway does not need to change the request).
pub struct OpenAiJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for OpenAiJson<T> {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let raw = read_body(req, state).await?;
        let value = parse(&raw)?;
        Ok(OpenAiJson { value, raw })
    }
}

/// The request's body, whole, within the configured limit (413 past it).
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, GatewayError> {
    let limit = state.config().max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    Ok(Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                GatewayError::PayloadTooLarge { limit }
            } else {
                GatewayError::invalid("could not read the request body", None)
            }
        })?
        .to_bytes())
}

/// Deserialises `raw`, reporting the path of the failing field (`messages[1].role`).
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, GatewayError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::invalid(
            "the request body is empty; expected a JSON object",
            None,
        ));
    }
    // The happy path parses once, plainly; only a failure pays for the path-tracking parse that
    // names the failing field.
    if let Ok(value) = serde_json::from_slice(raw) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let inner = err.inner();
        let path = err.path().to_string();
        let message = inner.to_string();
        // serde reports a missing field against the enclosing object: name the field itself.
        if let Some(field) = missing_field(&message) {
            let param = if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            return GatewayError::invalid(
                format!("missing required parameter: '{param}'"),
                Some(&param),
            );
        }
        if inner.is_syntax() || inner.is_eof() {
            return GatewayError::invalid(
                format!(
                    "the request body is not valid JSON (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
                None,
            );
        }
        let reason = strip_position(&message);
        if path == "." {
            GatewayError::invalid(format!("invalid request body: {reason}"), None)
        } else {
            GatewayError::invalid(format!("invalid value for '{path}': {reason}"), Some(&path))
        }
    })
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn strip_position(message: &str) -> &str {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
}

#[cfg(test)]
mod tests {
    use reprise_api::ChatCompletionRequest;

    use super::*;

    fn err(body: &str) -> reprise_api::ErrorObject {
        parse::<ChatCompletionRequest>(body.as_bytes())
            .err()
            .unwrap()
            .body()
            .error
    }

    #[test]
    fn names_the_missing_field() {
        let e = err(r#"{"messages":[]}"#);
        assert_eq!(e.param.as_deref(), Some("model"));
        assert_eq!(e.kind, "invalid_request_error");
        let e = err(r#"{"model":"m"}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(r#"{"model":"m","messages":[{"content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn names_the_mistyped_field() {
        let e = err(r#"{"model":7,"messages":[]}"#);
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(r#"{"model":"m","messages":[{"role":"user"},{"role":"robot"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[1].role"));
    }

    #[test]
    fn reports_malformed_json() {
        let e = err(r#"{"model": "m", "#);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        assert_eq!(e.param, None);
        let e = err("   ");
        assert!(e.message.contains("empty"), "{}", e.message);
        let e = err("[1,2]");
        assert!(e.message.contains("invalid request body"), "{}", e.message);
    }
}
