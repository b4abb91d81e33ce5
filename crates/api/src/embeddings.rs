use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// `POST /v1/embeddings` request body: the gateway needs `model` to route and checks that
/// `input` is there; the rest is forwarded as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Value,
    #[serde(flatten)]
    pub extra: Extra,
}
