//! Where the semantic tier's vectors come from: the embedded model (in-process, microseconds)
//! or a remote OpenAI-compatible `/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI). A remote
//! failure never fails a request: the semantic tier is skipped and the request goes upstream.

use std::sync::Arc;

use reprise_cache::embed::Embedder;
use reprise_cache::guard;
use serde::Deserialize;

use crate::config::RemoteEmbeddingConfig;

/// Why no vector could be had for a text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding endpoint unreachable or too slow: {0}")]
    Transport(String),
    #[error("embedding endpoint answered {status}")]
    Status { status: u16 },
    #[error("embedding endpoint answered with an unexpected body: {0}")]
    Body(String),
}

/// The semantic tier's model.
#[derive(Debug, Clone)]
pub enum SemanticModel {
    Local(Arc<dyn Embedder>),
    Remote(Arc<RemoteEmbedder>),
}

impl SemanticModel {
    /// L2-normalised vectors for `questions`, in order, as [`Embedder::embed_question`] makes
    /// them.
    pub async fn embed_questions(&self, questions: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            SemanticModel::Local(model) => {
                Ok(questions.iter().map(|q| model.embed_question(q)).collect())
            }
            SemanticModel::Remote(remote) => {
                let texts: Vec<_> = questions.iter().map(|q| guard::embedded(q)).collect();
                let texts: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
                remote.embed(&texts).await
            }
        }
    }

    /// The model's name, for logs and `reprise eval`.
    pub fn name(&self) -> String {
        match self {
            SemanticModel::Local(model) => model.name().to_owned(),
            SemanticModel::Remote(remote) => format!("{} at {}", remote.model, remote.url),
        }
    }
}

/// A client of an OpenAI-compatible embeddings API.
#[derive(Debug)]
pub struct RemoteEmbedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<reprise_providers::Secret>,
}

#[derive(Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

/// Texts per request when many are embedded at once (start-up, eval).
pub const BATCH: usize = 128;

impl RemoteEmbedder {
    pub fn new(config: &RemoteEmbeddingConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", config.base_url),
            model: config.model.clone(),
            api_key: config.api_key.clone(),
        })
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }

    async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        // The error's Display includes the URL, never the key.
        let response = request
            .send()
            .await
            .map_err(|e| EmbedError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(EmbedError::Status {
                status: status.as_u16(),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| EmbedError::Transport(e.without_url().to_string()))?;
        let mut list: EmbeddingList =
            serde_json::from_slice(&body).map_err(|e| EmbedError::Body(e.to_string()))?;
        list.data.sort_by_key(|d| d.index);
        let indexes_match = list.data.iter().enumerate().all(|(i, d)| d.index == i);
        if list.data.len() != texts.len() || !indexes_match {
            return Err(EmbedError::Body(format!(
                "{} vectors for {} texts",
                list.data.len(),
                texts.len()
            )));
        }
        let dim = list.data.first().map_or(0, |d| d.embedding.len());
        if dim == 0 || list.data.iter().any(|d| d.embedding.len() != dim) {
            return Err(EmbedError::Body("vectors of differing or zero size".into()));
        }
        Ok(list
            .data
            .into_iter()
            .map(|d| normalise(d.embedding))
            .collect())
    }
}

/// Scales `v` to unit length (remote models do not all normalise); a zero or non-finite
/// vector becomes all zeros, which matches nothing.
fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm.is_finite() && norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    v
}

/// A remote model behind the synchronous [`Embedder`] interface, for `reprise eval` (a command
/// with no async runtime of its own). A failed call yields a zero vector (which matches nothing)
/// and is remembered: [`BlockingRemote::failure`] reports it once the evaluation is over.
pub struct BlockingRemote {
    runtime: tokio::runtime::Runtime,
    remote: RemoteEmbedder,
    name: String,
    dim: usize,
    failure: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for BlockingRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRemote")
            .field("name", &self.name)
            .finish()
    }
}

impl BlockingRemote {
    /// Connects and learns the model's dimension from one probe call.
    pub fn new(config: &RemoteEmbeddingConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let remote = RemoteEmbedder::new(config)?;
        let probe = runtime
            .block_on(remote.embed(&["dimension probe"]))
            .map_err(|e| anyhow::anyhow!("{e} ({})", remote.url))?;
        let dim = probe.first().map_or(0, Vec::len);
        let name = format!("{} at {}", remote.model, remote.url);
        Ok(Self {
            runtime,
            remote,
            name,
            dim,
            failure: std::sync::Mutex::new(None),
        })
    }

    /// The first failed call, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Embedder for BlockingRemote {
    fn embed(&self, text: &str) -> Vec<f32> {
        match self.runtime.block_on(self.remote.embed(&[text])) {
            Ok(mut v) if v.len() == 1 && v[0].len() == self.dim => v.pop().unwrap_or_default(),
            outcome => {
                let reason = match outcome {
                    Err(e) => e.to_string(),
                    Ok(_) => "a vector of another size".to_owned(),
                };
                self.failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(reason);
                vec![0.0; self.dim]
            }
        }
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_normalised_and_bad_ones_match_nothing() {
        assert_eq!(normalise(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
        assert_eq!(normalise(vec![f32::NAN, 1.0]), vec![0.0, 0.0]);
    }
}
