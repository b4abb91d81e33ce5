//! OpenAI, Azure OpenAI and every server that speaks the OpenAI API (Groq, Together, Mistral,
//! DeepSeek, OpenRouter, vLLM, Ollama, llama.cpp, LM Studio). The wire format *is* the hub
//! format: bodies pass through byte for byte, unless the model must be renamed for the upstream.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use crate::stream::Dialect;
use crate::transport::{BuildError, Http, endpoint};
use crate::{ChatCall, Endpoint, Reply, Secret, StoredCall, UpstreamError};

/// The default Azure OpenAI data-plane API version.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Which flavour of the OpenAI API the upstream speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// `{base_url}/chat/completions` with a bearer key.
    OpenAi,
    /// `{resource}/openai/deployments/{deployment}/chat/completions?api-version=...` with an
    /// `api-key` header; the deployment is the upstream model name.
    Azure { api_version: String },
}

#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    http: Http,
    flavor: Flavor,
    base_url: String,
    /// Endpoint URLs parsed once (OpenAI flavour; Azure's depend on the deployment), shared
    /// by the adapter's clones.
    urls: std::sync::Arc<Urls>,
}

#[derive(Debug)]
struct Urls {
    chat: url::Url,
    completions: url::Url,
    embeddings: url::Url,
    responses: url::Url,
    models: url::Url,
}

impl OpenAiCompatible {
    pub fn new(endpoint_config: Endpoint, flavor: Flavor) -> Result<Self, BuildError> {
        let mut http = Http::new(
            endpoint_config.timeouts,
            endpoint_config.http2_prior_knowledge,
            &endpoint_config.headers,
        )?;
        let key = endpoint_config.api_key.as_ref();
        http = match flavor {
            Flavor::OpenAi => http.with_key("authorization", true, key)?,
            Flavor::Azure { .. } => http.with_key("api-key", false, key)?,
        };
        let base = endpoint_config.base_url.trim_end_matches('/').to_owned();
        let (chat_url, completions_url, embeddings_url, responses_url, models_url) = match &flavor {
            Flavor::OpenAi => (
                endpoint(&base, "/chat/completions")?,
                endpoint(&base, "/completions")?,
                endpoint(&base, "/embeddings")?,
                endpoint(&base, "/responses")?,
                endpoint(&base, "/models")?,
            ),
            Flavor::Azure { api_version } => {
                let models = endpoint(&base, &format!("/openai/models?api-version={api_version}"))?;
                let m = || models.clone();
                (m(), m(), m(), m(), models)
            }
        };
        Ok(Self {
            http,
            flavor,
            base_url: base,
            urls: std::sync::Arc::new(Urls {
                chat: chat_url,
                completions: completions_url,
                embeddings: embeddings_url,
                responses: responses_url,
                models: models_url,
            }),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self.flavor {
            Flavor::OpenAi => "openai",
            Flavor::Azure { .. } => "azure",
        }
    }

    pub async fn chat(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        self.generate(&self.urls.chat, "chat/completions", call)
            .await
    }

    /// `POST {base_url}/completions` (Azure: the deployment's).
    pub async fn completions(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        self.generate(&self.urls.completions, "completions", call)
            .await
    }

    /// A chat-shaped generation call: the operation's URL (Azure: the deployment's), the model
    /// renamed where the route says so.
    async fn generate(
        &self,
        fixed: &url::Url,
        operation: &str,
        call: ChatCall,
    ) -> Result<Reply, UpstreamError> {
        let url = self.url(fixed, operation, &call.body, call.model.as_deref())?;
        let body = rename_model(call.body, call.model.as_deref())?;
        self.post(&url, body, call.stream, call.api_key.as_ref())
            .await
    }

    /// Whether requests to `{base_url}/responses` are forwarded: not for Azure, whose Responses
    /// API lives under another path and API version than its chat deployments (its chat
    /// completions answer the API instead, translated).
    pub fn has_responses_api(&self) -> bool {
        matches!(self.flavor, Flavor::OpenAi)
    }

    /// `POST {base_url}/responses`; an upstream without it (Azure, see
    /// [`OpenAiCompatible::has_responses_api`]) is answered through its chat completions by
    /// `Provider::responses`.
    pub(crate) async fn responses(&self, call: ChatCall) -> Result<Reply, UpstreamError> {
        if !self.has_responses_api() {
            return Err(UpstreamError::Unsupported {
                param: "model".to_owned(),
                message: format!(
                    "A {} target forwards no Responses API requests.",
                    self.kind()
                ),
            });
        }
        let body = rename_model(call.body, call.model.as_deref())?;
        self.http
            .post(
                &self.urls.responses,
                body,
                call.stream,
                shape_error,
                call.api_key.as_ref(),
            )
            .await?
            .into_reply(self.http.timeouts.stream_idle, Ok, || Dialect::Responses)
    }

    /// A stored response's route: `method {base_url}/responses/{path}` (`{id}`, `{id}/cancel`,
    /// `{id}/input_items`, with their query; none of them has a body).
    pub async fn stored_response(&self, call: StoredCall<'_>) -> Result<Reply, UpstreamError> {
        if !self.has_responses_api() {
            return Err(crate::no_stored_responses(self.kind()));
        }
        let mut url = self.urls.responses.clone();
        url.path_segments_mut()
            .map_err(|()| UpstreamError::Transport("bad upstream URL".to_owned()))?
            .extend(call.path.split('/'));
        url.set_query(call.query);
        self.http
            .call(
                call.method,
                &url,
                Bytes::new(),
                call.stream,
                shape_error,
                call.api_key,
            )
            .await?
            .into_reply(self.http.timeouts.stream_idle, Ok, || Dialect::Responses)
    }

    /// `POST {base_url}/{path}` (Azure: the deployment's `{path}`): one of the OpenAI API's
    /// other routes, forwarded as it came (see `Provider::forward`).
    pub(crate) async fn forward(
        &self,
        call: crate::ForwardCall<'_>,
    ) -> Result<crate::Forwarded, UpstreamError> {
        let url = match &self.flavor {
            Flavor::Azure { api_version } => {
                let deployment = call.model.ok_or_else(|| UpstreamError::Unsupported {
                    param: "model".to_owned(),
                    message: "An Azure target needs the model (its deployment) named.".to_owned(),
                })?;
                let mut url = self.deployment_url(api_version, deployment, call.path)?;
                if let Some(query) = call.query.filter(|q| !q.is_empty()) {
                    let both = format!("{}&{query}", url.query().unwrap_or_default());
                    url.set_query(Some(&both));
                }
                url
            }
            Flavor::OpenAi => {
                let mut url = endpoint(&self.base_url, &format!("/{}", call.path))
                    .map_err(|_| UpstreamError::Transport("bad upstream URL".to_owned()))?;
                url.set_query(call.query);
                url
            }
        };
        self.http
            .forward(
                &url,
                call.content_type,
                call.body,
                shape_error,
                call.api_key,
            )
            .await
    }

    pub async fn embeddings(
        &self,
        body: Bytes,
        model: Option<&str>,
        api_key: Option<&Secret>,
    ) -> Result<Reply, UpstreamError> {
        let url = self.url(&self.urls.embeddings, "embeddings", &body, model)?;
        let body = rename_model(body, model)?;
        self.post(&url, body, false, api_key).await
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
        let body = self.http.get(&self.urls.models, shape_error).await?;
        let list: List = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Malformed(format!("unreadable model list: {e}")))?;
        Ok(list.data.into_iter().map(|e| e.id).collect())
    }

    /// The URL of an operation: fixed for OpenAI; per deployment for Azure.
    fn url<'a>(
        &self,
        fixed: &'a url::Url,
        operation: &str,
        body: &[u8],
        model: Option<&str>,
    ) -> Result<Cow<'a, url::Url>, UpstreamError> {
        let Flavor::Azure { api_version } = &self.flavor else {
            return Ok(Cow::Borrowed(fixed));
        };
        let deployment = match model {
            Some(m) => m.to_owned(),
            None => body_model(body)?,
        };
        Ok(Cow::Owned(self.deployment_url(
            api_version,
            &deployment,
            operation,
        )?))
    }

    /// Azure: `{resource}/openai/deployments/{deployment}/{operation}?api-version=...`.
    fn deployment_url(
        &self,
        api_version: &str,
        deployment: &str,
        operation: &str,
    ) -> Result<url::Url, UpstreamError> {
        let mut url = url::Url::parse(&format!("{}/openai/deployments/", self.base_url))
            .map_err(|e| UpstreamError::Transport(format!("bad Azure URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| UpstreamError::Transport("bad Azure URL".to_owned()))?
            .pop_if_empty()
            .push(deployment)
            .extend(operation.split('/'));
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    /// Whether [`OpenAiCompatible::forward`] takes `path` for `model`: every route on an
    /// OpenAI-flavoured upstream; on Azure, the routes a deployment has (not moderations), for
    /// a named model (the deployment).
    pub fn forwards(&self, path: &str, model: Option<&str>) -> bool {
        match self.flavor {
            Flavor::OpenAi => true,
            Flavor::Azure { .. } => model.is_some() && path != "moderations",
        }
    }

    async fn post(
        &self,
        url: &url::Url,
        body: Bytes,
        stream: bool,
        api_key: Option<&Secret>,
    ) -> Result<Reply, UpstreamError> {
        self.http
            .post(url, body, stream, shape_error, api_key)
            .await?
            .into_reply(self.http.timeouts.stream_idle, Ok, || Dialect::OpenAi)
    }
}

/// OpenAI-compatible error bodies pass as they are; the gateway wraps those that are not
/// OpenAI-shaped.
fn shape_error(_status: StatusCode, body: &[u8]) -> Bytes {
    Bytes::copy_from_slice(body)
}

fn body_model(body: &[u8]) -> Result<String, UpstreamError> {
    #[derive(Deserialize)]
    struct Probe {
        model: String,
    }
    serde_json::from_slice::<Probe>(body)
        .map(|p| p.model)
        .map_err(|_| UpstreamError::Unsupported {
            param: "model".to_owned(),
            message: "'model' must name a model".to_owned(),
        })
}

/// The body with its `model` replaced, or the body untouched when no renaming is needed (the
/// common case costs nothing).
fn rename_model(body: Bytes, model: Option<&str>) -> Result<Bytes, UpstreamError> {
    let Some(model) = model else {
        return Ok(body);
    };
    let mut request = crate::parse_request(&body)?;
    if request.get("model").and_then(|m| m.as_str()) == Some(model) {
        return Ok(body);
    }
    request.insert("model".to_owned(), serde_json::Value::from(model));
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|e| UpstreamError::Transport(format!("could not encode the request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timeouts;

    fn endpoint_config(base_url: &str) -> Endpoint {
        Endpoint {
            base_url: base_url.into(),
            api_key: Some(Secret::new("sk-very-secret")),
            headers: vec![("OpenAI-Organization".into(), Secret::new("org-secret"))],
            timeouts: Timeouts::default(),
            http2_prior_knowledge: false,
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let p = OpenAiCompatible::new(endpoint_config("http://127.0.0.1:1/v1/"), Flavor::OpenAi)
            .unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(!shown.contains("org-secret"), "{shown}");
        assert_eq!(
            p.urls.chat.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
    }

    #[test]
    fn azure_urls_name_the_deployment_and_version() {
        let p = OpenAiCompatible::new(
            endpoint_config("https://res.openai.azure.com/"),
            Flavor::Azure {
                api_version: "2024-10-21".into(),
            },
        )
        .unwrap();
        let url = p
            .url(
                &p.urls.chat,
                "chat/completions",
                br#"{"model":"gpt 4o/x"}"#,
                None,
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt%204o%2Fx/chat/completions?api-version=2024-10-21"
        );
        let url = p
            .url(&p.urls.chat, "embeddings", b"{}", Some("emb"))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
        assert_eq!(p.kind(), "azure");
    }

    #[test]
    fn renaming_keeps_every_other_field() {
        let body = Bytes::from_static(br#"{"model":"smart","messages":[],"x_vendor":{"a":1}}"#);
        assert_eq!(rename_model(body.clone(), None).unwrap(), body);
        let renamed: serde_json::Value =
            serde_json::from_slice(&rename_model(body, Some("gpt-4o")).unwrap()).unwrap();
        assert_eq!(
            renamed,
            serde_json::json!({"model":"gpt-4o","messages":[],"x_vendor":{"a":1}})
        );
    }
}
