//! Anthropic's Messages API: `POST {base_url}/v1/messages` with `x-api-key` and
//! `anthropic-version` headers. The base URL is the host without `/v1`, as in Anthropic's SDKs
//! (`ANTHROPIC_BASE_URL`).

pub(crate) mod stream;
pub(crate) mod translate;

use bytes::Bytes;
use serde::Deserialize;

use crate::stream::Dialect;
use crate::transport::{BuildError, Http, endpoint};
use crate::{ChatCall, Endpoint, Reply, UpstreamError};

pub use translate::DEFAULT_MAX_TOKENS;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version every request is made with.
pub const API_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone)]
pub struct Anthropic {
    http: Http,
    messages_url: url::Url,
    models_url: url::Url,
}

impl Anthropic {
    pub fn new(config: Endpoint) -> Result<Self, BuildError> {
        let mut http = Http::new(
            config.timeouts,
            config.http2_prior_knowledge,
            &config.headers,
        )?
        .with_header("anthropic-version", API_VERSION)?;
        http = http.with_key("x-api-key", false, config.api_key.as_ref())?;
        let base = config.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Ok(Self {
            http,
            messages_url: endpoint(base, "/v1/messages")?,
            models_url: endpoint(base, "/v1/models?limit=1000")?,
        })
    }

    pub async fn chat(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        let request = crate::parse_request(&call.body)?;
        let model = match call.model.as_deref() {
            Some(m) => m,
            None => request
                .get("model")
                .and_then(|m| m.as_str())
                .unwrap_or_default(),
        };
        let (body, context) = translate::request(&request, model, call.stream)?;
        let body = Bytes::from(body.to_string());
        let answer = self
            .http
            .post(
                &self.messages_url,
                body,
                call.stream,
                translate::error,
                call.api_key.as_ref(),
            )
            .await?;
        let for_stream = context.clone();
        answer.into_reply(
            self.http.timeouts.stream_idle,
            |body| translate::response(&body, &context),
            || Dialect::Anthropic(stream::Translator::new(for_stream)),
        )
    }

    pub async fn list_models(&self) -> Result<Vec<String>, UpstreamError> {
        #[derive(Deserialize)]
        struct List {
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            id: String,
        }
        let body = self.http.get(&self.models_url, translate::error).await?;
        let list: List = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Malformed(format!("unreadable model list: {e}")))?;
        Ok(list.data.into_iter().map(|e| e.id).collect())
    }
}

#[cfg(test)]
mod tests;
