//! Google Gemini: `POST {base_url}/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, with the key in the `x-goog-api-key` header (never in the
//! URL, so it cannot leak through a logged URL).

pub(crate) mod embeddings;
pub(crate) mod stream;
pub(crate) mod translate;

use bytes::Bytes;
use serde::Deserialize;

use crate::stream::Dialect;
use crate::transport::{BuildError, Http};
use crate::{ChatCall, Endpoint, Reply, UpstreamError};

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

#[derive(Debug, Clone)]
pub struct Gemini {
    http: Http,
    base_url: url::Url,
    models_url: url::Url,
}

impl Gemini {
    pub fn new(config: Endpoint) -> Result<Self, BuildError> {
        let mut http = Http::new(
            config.timeouts,
            config.http2_prior_knowledge,
            &config.headers,
        )?;
        http = http.with_key("x-goog-api-key", false, config.api_key.as_ref())?;
        let base = config.base_url.trim_end_matches('/');
        Ok(Self {
            http,
            base_url: crate::transport::endpoint(base, "/")?,
            models_url: crate::transport::endpoint(base, "/models?pageSize=1000")?,
        })
    }

    /// `{base}/models/{model}:{method}`; the model may come as `models/...`.
    fn url(&self, model: &str, stream: bool) -> Result<url::Url, UpstreamError> {
        let method = if stream {
            "streamGenerateContent"
        } else {
            "generateContent"
        };
        let mut url = self.method_url(model, method)?;
        if stream {
            url.query_pairs_mut().append_pair("alt", "sse");
        }
        Ok(url)
    }

    fn method_url(&self, model: &str, method: &str) -> Result<url::Url, UpstreamError> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| UpstreamError::Transport("bad Gemini base URL".to_owned()))?
            .pop_if_empty()
            .push("models")
            .push(&format!("{model}:{method}"));
        Ok(url)
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
        let (body, context) = translate::request(&request, model)?;
        let url = self.url(model, call.stream)?;
        let body = Bytes::from(body.to_string());
        let answer = self
            .http
            .post(
                &url,
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
            || Dialect::Gemini(stream::Translator::new(for_stream)),
        )
    }

    /// An OpenAI embeddings request, through `:batchEmbedContents` (see [`embeddings`]).
    pub async fn embeddings(
        &self,
        body: Bytes,
        model: Option<&str>,
        api_key: Option<&crate::Secret>,
    ) -> Result<Reply, UpstreamError> {
        let request = crate::parse_request(&body)?;
        let model = match model {
            Some(m) => m,
            None => request
                .get("model")
                .and_then(|m| m.as_str())
                .unwrap_or_default(),
        };
        let (body, context) = embeddings::request(&request, model)?;
        let url = self.method_url(model, "batchEmbedContents")?;
        let body = Bytes::from(body.to_string());
        let answer = self
            .http
            .post(&url, body, false, translate::error, api_key)
            .await?;
        match answer {
            crate::transport::Answer::Whole {
                status,
                body,
                first_byte,
            } => Ok(Reply::Json {
                status,
                body: embeddings::response(&body, &context)?,
                first_byte,
            }),
            crate::transport::Answer::Stream { .. } => Err(UpstreamError::Malformed(
                "an event stream in answer to an embeddings request".to_owned(),
            )),
        }
    }

    pub async fn list_models(&self) -> Result<Vec<String>, UpstreamError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            models: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            name: String,
        }
        let body = self.http.get(&self.models_url, translate::error).await?;
        let list: List = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Malformed(format!("unreadable model list: {e}")))?;
        Ok(list
            .models
            .into_iter()
            .map(|e| e.name.strip_prefix("models/").unwrap_or(&e.name).to_owned())
            .collect())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod url_tests {
    use super::*;
    use crate::{Secret, Timeouts};

    #[test]
    fn urls_name_the_model_and_method_and_hide_the_key() {
        let g = Gemini::new(Endpoint {
            base_url: "https://generativelanguage.googleapis.com/v1beta/".into(),
            api_key: Some(Secret::new("AIza-secret")),
            headers: Vec::new(),
            timeouts: Timeouts::default(),
            http2_prior_knowledge: false,
        })
        .unwrap();
        assert_eq!(
            g.url("models/gemini-2.5-flash", false).unwrap().as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            g.url("gemini-2.5-flash", true).unwrap().as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(!format!("{g:?}").contains("AIza-secret"));
    }
}
